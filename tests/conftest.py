import socket

import pytest
import torch
from hypothesis import settings

# Property tests draw the same examples on every machine and run: a CI run cannot flake.
settings.register_profile("course", derandomize=True)
settings.load_profile("course")


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


@pytest.fixture(scope="session", autouse=True)
def _session_data_dir(tmp_path_factory):
    """Tests leave the checkout as they found it: models they train go to a temporary folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVLAB_DATA", str(tmp_path_factory.mktemp("advlab-data")))
        yield


@pytest.fixture(autouse=True)
def _cpu_and_threads(monkeypatch):
    monkeypatch.setenv("ADVLAB_DEVICE", "cpu")
    # the course's defaults, whatever the shell running the tests has set
    for name in ("ADVLAB_SEED", "ADVLAB_PROFILE", "ADVLAB_SMOKE", "ADVLAB_HEADLINES",
                 "ADVLAB_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: a second CPU thread costs more than it saves on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
