"""The issue-17 evaluation table of RESULTS.md (middle sizes; gap closed per completer x recognizer,
PSNR / SSIM / mask IoU on the FaceScrub probes) from the committed sweep table alone.

    python reports/summary_51k.py [reports/sweep]
"""
import sys

import pandas as pd

from occbench.report import headline_rows, table1
from occbench.results import read_results

MIDDLE = (('rect', 0.1), ('text', 0.3))
MODELS = ['occluded', 'bvmr', 'bvmr-51k', 'c2fdan-coarse', 'c2fdan-coarse-51k', 'c2fdan-no-style',
          'c2fdan-no-style-51k', 'c2fdan', 'c2fdan-51k', 'c2fdan-pixel-fine-51k']
RECOGNIZERS = ('dlib', 'resnet50', 'onnx')


def main(path: str) -> None:
    df = read_results(path)
    heads = headline_rows(df)
    rows = {}
    for form in ('rect', 'text', None):
        forms = (form,) if form else ('rect', 'text')
        t = table1(df, sizes=tuple(f'{f}:{s:g}' for f, s in MIDDLE), forms=forms)
        t = t[t.model.isin(MODELS)]
        tag = form or 'avg'
        for r in t.itertuples():
            if r.column == 'gap closed %' and r.recognizer in RECOGNIZERS:
                rows.setdefault(r.model, {})[f'gap {r.recognizer} {tag}'] = round(r.value, 1)
            if r.column in ('PSNR', 'SSIM') and form and f'{r.column} {tag}' not in rows.get(r.model, {}):
                rows.setdefault(r.model, {})[f'{r.column} {tag}'] = round(r.value, 2 if r.column == 'PSNR' else 3)
            if r.column == 'TPIR@1 avg' and not form and r.recognizer in RECOGNIZERS:
                rows.setdefault(r.model, {})[f'TPIR@1 {r.recognizer}'] = round(r.value, 2)
    q = heads['mask_iou']
    q = pd.concat([q[(q.form == f) & (q['size'] == s) & q.model.isin(MODELS)] for f, s in MIDDLE])
    for (m, f), v in q.drop_duplicates(['model','form','position']).groupby(['model', 'form']).value.mean().items():
        rows.setdefault(m, {})[f'IoU {f}'] = round(v, 3)
    out = pd.DataFrame(rows).T.reindex(MODELS).dropna(how='all')
    cols = [c for c in ['TPIR@1 dlib','gap dlib rect','gap dlib text','gap dlib avg','TPIR@1 resnet50','gap resnet50 rect','gap resnet50 text','gap resnet50 avg','TPIR@1 onnx','gap onnx rect','gap onnx text','gap onnx avg','PSNR rect','PSNR text','SSIM rect','SSIM text','IoU rect','IoU text'] if c in out.columns]
    print(out[cols].to_markdown())

    # LFW verification at the middle sizes (% over the 6,000 pairs): at the eyes, and the mean over
    # the four positions where all four were measured ('' where not)
    lfw = heads['lfw']
    lfw = lfw[lfw.model.isin(MODELS) & lfw.recognizer.isin(RECOGNIZERS)]
    cells = {}
    for r in RECOGNIZERS:  # the clean condition (stored with `occluded`) under each form's columns
        clean = lfw[(lfw.model == 'occluded') & (lfw.recognizer == r) & (lfw.form == 'none')].value
        for f, _ in MIDDLE:
            cells.setdefault('clean', {})[f'{r} {f} eyes'] = f'{100 * clean.iloc[0]:.2f}' if len(clean) else ''
    for m in MODELS:
        for r in RECOGNIZERS:
            for f, s in MIDDLE:
                part = lfw[(lfw.model == m) & (lfw.recognizer == r) & (lfw.form == f) & (lfw['size'] == s)]
                eyes = part[part.position == 'eyes'].value
                cells.setdefault(m, {})[f'{r} {f} eyes'] = f'{100 * eyes.iloc[0]:.2f}' if len(eyes) else ''
                cells[m][f'{r} {f} avg'] = f'{100 * part.value.mean():.2f}' if part.position.nunique() == 4 else ''
    out = pd.DataFrame(cells).T.fillna('')
    out = out[[f'{r} {f} {k}' for r in RECOGNIZERS for f in ('rect', 'text') for k in ('eyes', 'avg')]]
    out = out.loc[(out != '').any(axis=1), (out != '').any()]
    print('\nLFW verification % (middle sizes; "eyes" = occluder at the eyes, "avg" = mean over the 4 positions):\n')
    print(out.to_markdown())


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'reports/sweep')
