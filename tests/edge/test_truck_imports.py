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
