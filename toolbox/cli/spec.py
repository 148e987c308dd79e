"""deepvis spec: write the spec inferred for a Keras model file, for a person to edit."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from toolbox.cli.common import SETTING, settings_of

log = logging.getLogger("toolbox.cli")


def add_parser(command) -> None:
    p = command("spec", run, "write the spec deepvis infers for a .keras / .h5 model, for you to edit",
                "the spec lists the layers offered (in graph order), the dream layers, the input size, the\n"
                "preprocessing, what the output is and the labels file; every key may be deleted (it is\n"
                "inferred again) or changed (it overrides what is inferred). --preprocess and --labels are\n"
                "written into it.\n"
                "example:\n  deepvis spec mine.keras -o models/mine.yaml\n  deepvis live --model models/mine.yaml")
    p.add_argument("model_file", metavar="MODEL", help="a .keras or .h5 model file")
    p.add_argument("-o", "--output", metavar="SPEC.yaml", help="where to write the spec (default: print it); an "
                   "existing file is kept unless --force")
    p.add_argument("--force", action="store_true", help="replace an existing SPEC.yaml (your edits in it are lost)")


def run(args: argparse.Namespace) -> None:
    from toolbox.errors import UserError
    from toolbox.files import atomic_write, check_output_file, clean_stray_parts, display_path
    from toolbox.tfstart import start_tensorflow_quietly

    start_tensorflow_quietly()  # before keras_model imports Keras: no TensorFlow start-up lines
    from toolbox.nets.keras_model import is_model_file

    if not is_model_file(args.model_file):
        raise UserError(f"deepvis spec reads a .keras or .h5 model file, not '{args.model_file[:60]}'")
    for key in ("model", "weights"):  # the spec is of MODEL: another network or weights file would be ignored
        if getattr(args, f"{SETTING}{key}", None) is not None:
            raise UserError(f"deepvis spec writes the spec of MODEL ({args.model_file[:60]}); --{key} does not apply")
    if args.output:
        clean_stray_parts(check_output_file(args.output, (".yaml", ".yml")).parent)
        if os.path.lexists(args.output) and not args.force:
            raise UserError(f"{display_path(args.output)} exists (a spec you may have edited): choose another -o, or "
                            f"--force to replace it")
    settings = settings_of(args)
    from toolbox.nets.keras_model import spec_text
    from toolbox.nets.registry import overrides_of

    name = Path(args.output).stem if args.output else Path(args.model_file).stem
    text, inferred = spec_text(args.model_file, name, overrides_of(settings))
    if not args.output:
        print(text, end="")
        return
    atomic_write(Path(args.output), text.encode())
    layers = len(inferred.mapping["layers"])
    print(f"wrote {args.output}: {layers} layers, preprocess {inferred.mapping['preprocess']}, "
          f"outputs {inferred.mapping['outputs']}; use it with --model {args.output}")
