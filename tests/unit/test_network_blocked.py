import socket

import pytest


def test_unit_tests_cannot_open_a_connection() -> None:
    # Given the unit conftest's network block
    # When a connection is attempted Then it is refused before leaving the process
    with pytest.raises(RuntimeError, match="may not open network connections"):
        socket.create_connection(("example.com", 443), timeout=1)
