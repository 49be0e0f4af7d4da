#!/usr/bin/env python
"""Print the frozen evaluation crop list (``strdiff_edu.data.FROZEN_EVAL_CROPS``) from its seed.

    python data_scripts/freeze_eval_list.py            # print the Python literal
    python data_scripts/freeze_eval_list.py --check    # exit 1 if the committed list differs

The list is committed so that the evaluation images never change silently (a new Pillow or a
change to the crop sampler would otherwise move them). Re-freeze only on purpose, and say so in
the changelog: every number in the book is computed on these crops and the masks drawn from
``mask_seed(EVAL_MASK_SEED, bin, i)``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strdiff_edu import data as D  # noqa: E402

crops = D.freeze_eval_crops()
if "--check" in sys.argv[1:]:
    same = crops == D.FROZEN_EVAL_CROPS
    print("frozen eval list matches its seed" if same else "frozen eval list differs from its seed")
    sys.exit(0 if same else 1)
print("FROZEN_EVAL_CROPS: Tuple[Crop, ...] = (")
for c in crops:
    print(f"    {c!r},")
print(")")
