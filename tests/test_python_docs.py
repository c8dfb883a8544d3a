"""docs/python.md runs: every ```python block, in order, in a folder with a trained model."""

import os
import re
from pathlib import Path

from helpers import SMALL, run_main

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"


def test_every_block_of_the_python_page_runs(tmp_path, capsys):
    fit = run_main(["fit", *SMALL, "--trainer.max_epochs", "1", "--test_after_fit", "false"], tmp_path)
    assert fit.returncode == 0, fit.stderr[-2000:]
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 4
    namespace: dict = {}
    previous = Path.cwd()
    os.chdir(tmp_path)
    try:
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)
    finally:
        os.chdir(previous)
    printed = capsys.readouterr().out
    assert "['2017-07-03', '2017-07-05']" in printed  # 2017-07-04 is a holiday
    assert "['AAPL']" in printed and "the checkpoint's value decides" in printed
    assert "DataFrame: non-numeric value 'n/a?' in column Close at row 3" in printed
    assert "0 True version_1" in printed and "20 ['Name', 'origin_date', 'target_date', 'step', 'forecast']" in printed
    assert "['2016', '2017'] 1" in printed and "['complete', 'complete'] best.yaml" in printed
    assert "validation_only= needs two or more years" in printed
