"""`wasmq-task build` marks its components as Python for the server's fuel default."""

from wasmq_task.build import _leb128, stamp_language


def test_leb128_encodes_as_wasm_does():
    assert _leb128(0) == b"\x00"
    assert _leb128(127) == b"\x7f"
    assert _leb128(128) == b"\x80\x01"
    assert _leb128(624485) == b"\xe5\x8e\x26"


def test_the_language_section_is_appended_as_a_custom_section(tmp_path):
    component = tmp_path / "task.wasm"
    header = b"\x00asm\x0d\x00\x01\x00"
    component.write_bytes(header)
    stamp_language(component)
    data = component.read_bytes()
    assert data[: len(header)] == header
    section = data[len(header):]
    name = b"wasmq-task-language"
    # id 0 (custom), size, then the name's length, the name and the payload
    assert section == b"\x00" + bytes([1 + len(name) + 6, len(name)]) + name + b"python"
