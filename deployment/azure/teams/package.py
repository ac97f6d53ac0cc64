#!/usr/bin/env python3
"""Build the Teams app package: manifest.json, rendered from manifest.template.json, and two icons.

    TEAMS_APP_ID=<a new GUID> MicrosoftAppId=<the bot's app id> BOT_DOMAIN=bot.example.com \
        python3 deployment/azure/teams/package.py

writes deployment/azure/teams/build/manifest.json and build/botloom-teams.zip (upload the zip in
Teams: Apps > Manage your apps > Upload an app). DEVELOPER_NAME and DEVELOPER_URL are optional
(default: "botloom" and https://BOT_DOMAIN). Standard library only. Exits with status 2, naming the
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
