import errno
import pickle

import pytest

from persistence import errors as E


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (errno.ENOSPC, E.DiskFullError),
        (errno.EDQUOT, E.DiskFullError),
        (errno.EACCES, E.PermissionDeniedError),
        (errno.EPERM, E.PermissionDeniedError),
        (errno.ENOENT, E.StorageMissingError),
        (errno.EIO, E.CorruptionError),
        (errno.EBADMSG, E.CorruptionError),
        (errno.EMFILE, E.PersistenceError),
    ],
)
def test_from_oserror_maps_errno_to_typed_child(code, cls):
    err = E.from_oserror(OSError(code, "boom"), "write", "/q/journal.3")
    assert type(err) is cls
    assert isinstance(err, OSError)
    assert err.errno == code
    assert err.filename == "/q/journal.3"
    assert err.strerror == "boom"


def test_message_names_operation_path_errno_and_next_step():
    err = E.from_oserror(OSError(errno.ENOSPC, "No space left on device"), "write", "/q/j.3")
    assert str(err) == (
        "DiskFullError: write failed: path='/q/j.3' errno=ENOSPC "
        "(No space left on device); free space, then retry: the queue is unchanged"
    )


def test_typed_error_is_returned_unchanged():
    err = E.from_oserror(OSError(errno.EIO, "x"), "read", "/a")
    assert E.from_oserror(err, "other", "/b") is err


@pytest.mark.parametrize(
    "err",
    [
        E.from_oserror(OSError(errno.ENOSPC, "full"), "write", "/q/journal.1"),
        E.from_oserror(OSError(errno.EACCES, "denied"), "open", "/q/lock"),
        E.usage_error(E.PayloadTooLargeError, "size=9 limit=8"),
        E.usage_error(E.UnknownEntryError, "entry_id='x' not found"),
        E.usage_error(E.InvalidTransitionError, "bad"),
        E.usage_error(E.QueueClosedError, "closed"),
    ],
)
def test_pickle_round_trip_keeps_class_errno_path_message(err):
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert (back.errno, back.filename, back.strerror) == (err.errno, err.filename, err.strerror)
    assert str(back) == str(err)


def test_non_io_errors_also_derive_from_the_expected_builtin():
    assert issubclass(E.PayloadTooLargeError, ValueError)
    assert issubclass(E.InvalidTransitionError, ValueError)
    assert issubclass(E.UnknownEntryError, KeyError)
    err = E.usage_error(E.UnknownEntryError, "ack: entry_id='x' not found")
    assert str(err).startswith("UnknownEntryError: ack: entry_id='x' not found")
    assert err.errno is None
