"""Property-based fuzzing of `stigmer config set` and the config file parser (issue 6, bad input).

Whatever a person types, the result is either a stored valid value or one clear error; never a
traceback, never a corrupted or half-written file.
"""

from __future__ import annotations

import contextlib
import io
import stat
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stigmer.cli.main import main
from stigmer.config import KEYS

KEY_NAMES = sorted(KEYS)


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process (fast enough for hundreds of examples); returns (code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


keys = st.one_of(st.sampled_from(KEY_NAMES), st.text(min_size=1, max_size=30).filter(lambda s: not s.startswith("-")))
values = st.one_of(st.text(max_size=40).filter(lambda s: not s.startswith("-")), st.integers().map(str),
                   st.floats(allow_nan=True).map(str), st.sampled_from(["true", "false", "ollama", "hot", ""]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=keys, value=values)
def test_config_set_stores_a_valid_value_or_says_why(stigmer_home: Path, key: str, value: str) -> None:
    path = stigmer_home / "config.yaml"
    path.write_text("llm:\n  model: keep:me\ncustom: {a: 1}\n")
    before = path.read_bytes()
    code, _out, err = run_cli("config", "set", key, value)
    assert "Traceback" not in err and "internal error" not in err
    if code != 0:
        assert code == 2 and err.startswith("error: ")
        assert path.read_bytes() == before
        return
    data = yaml.safe_load(path.read_text())
    assert data["custom"] == {"a": 1}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    section, _, rest = key.partition(".")
    node = data[section]
    for part in rest.split("."):
        node = node[part]
    parsed = KEYS[key].parse(node)
    assert (list(parsed) if isinstance(parsed, tuple) else parsed) == node  # what is stored parses back to itself
    if key != "llm.model":
        assert data["llm"]["model"] == "keep:me"
    code, _out, err = run_cli("config", "show", "--json")
    assert code == 0 or ("error: " in err and "Traceback" not in err)
