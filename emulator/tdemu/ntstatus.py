"""NTSTATUS values used by the kernel model, and name <-> value helpers."""

STATUS_SUCCESS = 0x00000000
STATUS_TIMEOUT = 0x00000102
STATUS_PENDING = 0x00000103
STATUS_END_OF_FILE = 0xC0000011
STATUS_UNSUCCESSFUL = 0xC0000001
STATUS_NOT_IMPLEMENTED = 0xC0000002
STATUS_INVALID_HANDLE = 0xC0000008
STATUS_INVALID_PARAMETER = 0xC000000D
STATUS_NO_MEMORY = 0xC0000017
STATUS_ACCESS_DENIED = 0xC0000022
STATUS_OBJECT_TYPE_MISMATCH = 0xC0000024
STATUS_OBJECT_NAME_INVALID = 0xC0000033
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
STATUS_OBJECT_NAME_COLLISION = 0xC0000035
STATUS_OBJECT_PATH_INVALID = 0xC0000039
STATUS_OBJECT_PATH_NOT_FOUND = 0xC000003A
STATUS_OBJECT_PATH_SYNTAX_BAD = 0xC000003B
STATUS_SHARING_VIOLATION = 0xC0000043
STATUS_INSUFFICIENT_RESOURCES = 0xC000009A
STATUS_FILE_IS_A_DIRECTORY = 0xC00000BA
STATUS_NOT_SUPPORTED = 0xC00000BB
STATUS_INVALID_INFO_CLASS = 0xC0000003
STATUS_INFO_LENGTH_MISMATCH = 0xC0000004
STATUS_DEVICE_DOES_NOT_EXIST = 0xC00000C0
STATUS_TOO_MANY_THREADS = 0xC0000129

NAMES = {v: k for k, v in globals().items() if k.startswith("STATUS_")}


def name(code: int) -> str:
    code &= 0xFFFFFFFF
    return NAMES.get(code, f"0x{code:08X}")


def parse(text: str) -> int:
    """'access_denied', 'STATUS_ACCESS_DENIED', '0xC0000022' -> int."""
    t = text.strip()
    if t.lower().startswith("0x"):
        return int(t, 16) & 0xFFFFFFFF
    if t.isdigit():
        return int(t) & 0xFFFFFFFF
    key = t.upper()
    if not key.startswith("STATUS_"):
        key = "STATUS_" + key
    v = globals().get(key)
    if not isinstance(v, int):
        raise ValueError(f"unknown NTSTATUS name: {text}")
    return v


def is_success(code: int) -> bool:
    return (code & 0x80000000) == 0
