#!/usr/bin/env python3
"""Build the Teams app package: manifest.json, rendered from manifest.template.json, and two icons.

    TEAMS_APP_ID=<a new GUID> MicrosoftAppId=<the bot's app id> BOT_DOMAIN=bot.example.com \
        python3 deployment/azure/teams/package.py

writes deployment/azure/teams/build/manifest.json and build/botloom-teams.zip (upload the zip in
Teams: Apps > Manage your apps > Upload an app). DEVELOPER_NAME and DEVELOPER_URL are optional
(default: "botloom" and https://BOT_DOMAIN). BOTLOOM_PROMPT_STARTERS (the bot's setting,
"title|text;title|text", at most 10) become the prompt starters of the personal scope: Teams puts
a command's title in the compose box, so each starter's text is the title and its title the
description. Standard library only. Exits with status 2, naming the
problem, when a value is missing or an icon has the wrong size (Teams wants 192x192 colour and
32x32 outline PNGs); the manifest's schema is checked by deployment/check.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ICON_SIZES = {"color.png": 192, "outline.png": 32}
REQUIRED = ("TEAMS_APP_ID", "MicrosoftAppId", "BOT_DOMAIN")
# ${NAME} is replaced; a bare $ (as in "$schema") stays.
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
STARTER_SCOPE = "personal"  # Teams shows prompt starters in one-to-one chats only
MAX_STARTERS = 10  # bot/turns/prompt_starters.py allows as many
MAX_COMMANDS = 12  # per command list (the manifest schema)
MAX_TITLE = 128


def prompt_starters(raw: str) -> list[dict[str, str]]:
    """BOTLOOM_PROMPT_STARTERS as manifest commands (the same rules as the bot's parser)."""
    commands = []
    for item in raw.replace("\n", ";").split(";"):
        if not item.strip():
            continue
        title, _, text = item.partition("|")
        title, text = title.strip(), (text.strip() or title.strip())
        if not title or len(text) > MAX_TITLE or len(title) > MAX_TITLE:
            raise ValueError(f"BOTLOOM_PROMPT_STARTERS: {item.strip()[:40]!r} is malformed")
        commands.append({"title": text, "description": title})
    if len(commands) > MAX_STARTERS:
        raise ValueError(f"BOTLOOM_PROMPT_STARTERS holds at most {MAX_STARTERS} starters")
    return commands


def with_prompt_starters(manifest: str, raw: str) -> str:
    """The manifest with the starters first in a command list of their own scope (the bot's
    commands follow, as many as fit); other scopes keep the template's list."""
    starters = prompt_starters(raw)
    if not starters:
        return manifest
    data = json.loads(manifest)
    for bot in data.get("bots", []):
        lists = bot.get("commandLists") or [{"scopes": [], "commands": []}]
        commands = lists[0]["commands"]
        others = [s for s in lists[0]["scopes"] if s != STARTER_SCOPE]
        personal = {"scopes": [STARTER_SCOPE], "commands": (starters + commands)[:MAX_COMMANDS]}
        bot["commandLists"] = [
            personal,
            *([{"scopes": others, "commands": commands}] if others else []),
        ]
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk; ValueError if the file is not a PNG."""
    header = path.read_bytes()[:24]
    if header[:8] != b"\x89PNG\r\n\x1a\n" or header[12:16] != b"IHDR":
        raise ValueError(f"{path.name} is not a PNG file")
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def render(environ: dict[str, str]) -> str:
    missing = [name for name in REQUIRED if not environ.get(name)]
    if missing:
        raise ValueError(f"set {', '.join(missing)} (see this script's docstring)")
    values = {
        "DEVELOPER_NAME": "botloom",
        "DEVELOPER_URL": f"https://{environ['BOT_DOMAIN']}",
        **{k: v for k, v in environ.items() if v},
    }
    template = (HERE / "manifest.template.json").read_text(encoding="utf-8")
    unknown = sorted({name for name in PLACEHOLDER.findall(template) if name not in values})
    if unknown:
        raise ValueError(f"set {', '.join(unknown)}")
    # Values are JSON-escaped: a quote in DEVELOPER_NAME must not break the manifest.
    return PLACEHOLDER.sub(lambda match: json.dumps(values[match.group(1)])[1:-1], template)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "build", help="output folder")
    args = parser.parse_args(argv)
    try:
        manifest = render(dict(os.environ))
        manifest = with_prompt_starters(manifest, os.environ.get("BOTLOOM_PROMPT_STARTERS", ""))
        for name, side in ICON_SIZES.items():
            if png_size(HERE / name) != (side, side):
                raise ValueError(f"{name} must be {side}x{side} pixels")
    except ValueError as error:
        print(f"package.py: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "manifest.json").write_text(manifest, encoding="utf-8")
    package = args.out / "botloom-teams.zip"
    with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", manifest)
        for name in ICON_SIZES:
            archive.write(HERE / name, name)
    print(f"wrote {package}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
