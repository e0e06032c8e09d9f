"""The README says what the code does: its list of data specs is the code's, and its Python snippets run."""
import re
from pathlib import Path

import pytest

from pretrain.data.specs import describe_specs

README = Path(__file__).resolve().parent.parent / "README.md"


def python_snippets():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_lists_the_data_specs_of_the_code():
    assert describe_specs() in README.read_text()


@pytest.mark.parametrize("marker", ["pretrain.pretrain_stack(data", "finetune.compare("])
def test_python_snippets_run_as_written_after_the_quick_start(marker, tmp_path, monkeypatch):
    """Each snippet runs in a fresh folder where the quick start left runs/digits (epochs cut to 1 for time)."""
    import pretrain
    monkeypatch.chdir(tmp_path)
    pretrain.pretrain_stack("digits", ["rbm:16", "rbm:8"], out="runs/digits", epochs=1, progress=False)
    code = next(snippet for snippet in python_snippets() if marker in snippet)
    code = re.sub(r"epochs=\d+", "epochs=1", code).replace('seeds=3', 'seeds=1')
    exec(compile("import pretrain\n" + code, "README.md", "exec"), {})
