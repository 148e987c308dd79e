"""Files made for a person to look at (dream images and videos), as opposed to the asset
cache that `toolbox.assets` owns for the window."""
