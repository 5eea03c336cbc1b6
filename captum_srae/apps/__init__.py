"""What a user runs: the ``captum-srae`` command line
(:mod:`~captum_srae.apps.cli` and its subcommands in
:mod:`~captum_srae.apps.commands`) and the parts demo
(:mod:`~captum_srae.apps.demo`). The top stage: nothing imports it.
"""
