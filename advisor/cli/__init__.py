"""The `tunewise` command line: one module per subcommand, shared conventions in `common`."""
