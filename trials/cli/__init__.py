"""The command-line shell: each module parses options, calls one library function, prints.

Modules here import the library inside the command functions so that `trials --help`
loads click and nothing heavy.
"""
