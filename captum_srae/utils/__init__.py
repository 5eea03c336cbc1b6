"""Helpers every stage may use: argument checks, atomic files, the user cache,
Captum compatibility and the package version. Imports no other stage."""
