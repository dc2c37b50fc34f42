"""Generate docs/cli.md from the commands' own --help, so the reference cannot drift.

Run `make docs`; a test fails when docs/cli.md is stale.
"""

from __future__ import annotations

import click


def iter_commands(command: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    """Every command below `command`, depth first, in name order."""
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            found.extend(iter_commands(command.commands[name], [*path, name]))
    return found


def help_text(root: click.Command, path: list[str]) -> str:
    """The --help of the command at `path`, as a user sees it (contexts chained from the root,
    so settings such as `-h` for help are inherited)."""
    ctx = click.Context(root, info_name=path[0], **root.context_settings)
    command = root
    for name in path[1:]:
        assert isinstance(command, click.Group)
        command = command.commands[name]
        ctx = click.Context(command, info_name=name, parent=ctx)
    return command.get_help(ctx)


def render(root: click.Command) -> str:
    lines = [
        "# Command-line reference",
        "",
        "Generated from `trials ... --help` by `make docs`; do not edit by hand.",
        "",
    ]
    for path, _command in iter_commands(root, ["trials"]):
        lines += [f"## `{' '.join(path)}`", "", "```", help_text(root, path).rstrip(), "```", ""]
    return "\n".join(lines)


def main() -> None:
    from cli import main as root

    print(render(root), end="")


if __name__ == "__main__":
    main()
