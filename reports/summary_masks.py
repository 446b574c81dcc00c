"""The mask / sunglasses tables of RESULTS.md (issue 19) from the committed sweep table alone:
TPIR@1 % of the paper's protocol (probe and mate occluded) and of the clean-gallery variant
(``cg``: mate clean) per recognizer and condition, dlib / onnx / resnet50 LFW %, and the
completers' rows with their FaceScrub PSNR / mask IoU.

    python reports/summary_masks.py [reports/sweep]
"""

import sys

import pandas as pd

from occbench.report import headline_rows
from occbench.results import read_results

CG = "identification-clean-gallery"
COND = [("mask", 0.1), ("mask", 0.4), ("mask", 0.8), ("glasses", 1.2), ("glasses", 1.6),
        ("glasses", 2.0)]


def _at(df: pd.DataFrame, form: str, size: float) -> pd.DataFrame:
    return df[(df.form == form) & (df["size"] == size)]


def main(path: str) -> str:
    df = read_results(path)
    heads = headline_rows(df)  # TPIR@1 at the largest D of each protocol, LFW, probe-set quality
    ident, lfw = pd.concat([heads["tpir1"], heads["tpir1_cg"]]), heads["lfw"]
    out = []
    for model in ("occluded", "bvmr-51k", "c2fdan-51k"):
        rows = []
        for recognizer in ("dlib", "onnx", "resnet50", "resnet50-occ"):
            cells = {"recognizer": recognizer}
            for protocol, tag in (("identification", ""), (CG, "cg ")):
                part = ident[(ident.model == model) & (ident.recognizer == recognizer)
                             & (ident.protocol == protocol)]
                for form, size in COND:
                    v = _at(part, form, size).value
                    cells[f"{tag}{form} {size:g}"] = f"{100 * v.iloc[0]:.2f}" if len(v) else ""
                if protocol == CG:  # the paper's forms, middle sizes, against the clean gallery
                    for form, size in (("rect", 0.1), ("text", 0.3)):
                        v = _at(part, form, size).value
                        cells[f"cg {form} {size:g}"] = f"{100 * v.mean():.2f}" if len(v) else ""
            part = lfw[(lfw.model == model) & (lfw.recognizer == recognizer)]
            for form, size in COND:
                v = _at(part, form, size).value
                cells[f"LFW {form} {size:g}"] = f"{100 * v.iloc[0]:.2f}" if len(v) else ""
            if any(v for k, v in cells.items() if k != "recognizer"):
                rows.append(cells)
        table = pd.DataFrame(rows)
        table = table.loc[:, (table != "").any()]
        quality = []
        for metric in ("psnr", "ssim", "mask_iou"):
            part = heads[metric][heads[metric].model == model]
            vals = [_at(part, f, s).value for f, s in COND]
            quality.append(f"{metric} " + " / ".join(f"{v.iloc[0]:.3g}" if len(v) else "–"
                                                      for v in vals))
        out.append(f"`{model}` (TPIR@1 %, D = 13,219; `cg` = clean gallery; LFW %):\n\n"
                   + table.to_markdown(index=False) + "\n\nFaceScrub " + "; ".join(quality)
                   + " (mask 0.1 / 0.4 / 0.8, glasses 1.2 / 1.6 / 2.0)\n")
    return "\n".join(out)


if __name__ == "__main__":
    print(main(sys.argv[1] if len(sys.argv) > 1 else "reports/sweep"))
