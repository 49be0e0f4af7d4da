"""Shared fixtures of the test suite."""
import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: when the machine's cores are shared, OpenMP spin-waits
    make two-thread runs tens of times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
