"""A truck gateway installs without OpenCV, OCR, Modbus or the server (DESIGN.md)."""

import subprocess
import sys

HEAVY = ("cv2", "numpy", "rapidocr_onnxruntime", "onnxruntime", "pymodbus", "server", "shapely")


def test_truck_agent_imports_no_gate_or_server_code():
    code = (
        "import sys, edge.__main__, edge.config, edge.truck.agent; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"the truck agent imports {result.stdout.strip()}"


def test_the_truck_agent_loads_no_cryptography_before_its_first_command():
    # about 7 MB of its memory (bench/bench_truck.py): the server's key is checked at
    # start by its RFC 8410 form, and the library loaded to verify the first command
    code = "import sys, edge.__main__, edge.truck.agent; print('cryptography' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_the_agents_build_their_models_without_importlib_metadata():
    # about 1 MB of the truck agent's memory (docs/hil.md): pydantic's plugin lookup
    # imports importlib.metadata (zipfile, csv, tempfile…) for plugins a gateway never has
    ack = '{"node_id": "T1", "ts": "2026-12-07T06:00:00.000Z", "ranges": [[1, 3]]}'
    code = (
        "import sys, edge.__main__ as m; m.skip_pydantic_plugin_discovery(); "
        "import edge.config, edge.truck.agent; "
        "from contract.payloads import Ack, decode; "
        f"print(decode(Ack, {ack!r}).ranges, 'importlib.metadata' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[(1, 3)] False"


def test_pydantic_still_asks_its_loader_for_plugins_by_a_call_without_arguments():
    # the stand-in of edge.__main__.skip_pydantic_plugin_discovery answers that call
    import inspect

    from pydantic.plugin import _loader, _schema_validator

    assert list(inspect.signature(_loader.get_plugins).parameters) == []
    assert "get_plugins()" in inspect.getsource(_schema_validator.create_schema_validator)
