import sys

from toolbox.cli import main

sys.exit(main())
