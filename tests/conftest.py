import socket

import pytest
import torch


@pytest.fixture
def no_network(monkeypatch):
    """Make every socket connection fail at once, as on an offline machine."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled for this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def tmp_data(monkeypatch, tmp_path):
    """An empty ADVLAB_DATA folder."""
    monkeypatch.setenv("ADVLAB_DATA", str(tmp_path))
    return tmp_path


@pytest.fixture(autouse=True)
def _cpu_and_threads(monkeypatch):
    monkeypatch.setenv("ADVLAB_DEVICE", "cpu")
    torch.manual_seed(0)
