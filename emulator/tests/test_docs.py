"""emulator/README.md's map of the routines modelled is the one the code registers."""
import os

from conftest import EMU

from tdemu.nt.kernel import all_exports, api_table


def test_readme_lists_every_routine_with_its_handler():
    readme = open(os.path.join(EMU, "README.md")).read()
    assert api_table() in readme
    for (_dll, name), e in all_exports().items():
        assert f"| `{name}`" in readme, name
        assert callable(e.handler) and e.component in ("ke", "ex", "io", "ob", "ps", "rtl", "hal")
