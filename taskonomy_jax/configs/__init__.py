"""The packaged run configs: each module's `get_config(arg)` returns an `ml_collections.ConfigDict`
(big_vision's convention), and each is installed with the package, so the installed `taskonomy`
commands find their defaults from any working directory.

  task_network   one task network (`taskonomy train task_network:cpu`; args `paper`, `cpu`)
  taskbank       every task network of the registry (`taskonomy taskbank train taskbank:cpu`;
                 args `cpu`, `cpu_full`, `paper`, `tiny`); builds on task_network
  taxonomy       the whole pipeline (`taskonomy taxonomy --config taxonomy:tiny`; args
                 `default`, `full`, `tiny`, `paper`)

Commands name them `NAME[:arg]` (`config_files.load_config`); a researcher's own config is a
file `path/to/config.py[:arg]` that imports one of these and changes what it studies
(experiments/configs/). Configs import only ml_collections and each other (tests/test_layers.py).
"""
