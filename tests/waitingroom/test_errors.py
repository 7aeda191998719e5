from waitingroom import errors


def test_every_error_is_a_waiting_room_error() -> None:
    for name in (
        "TicketError",
        "RoomNotFound",
        "RoomClosed",
        "InvalidAccessCode",
        "LeadershipLost",
        "InvalidRoomConfig",
    ):
        assert issubclass(getattr(errors, name), errors.WaitingRoomError)
    for name in ("InvalidTicket", "WrongRoom", "TicketExpired"):
        assert issubclass(getattr(errors, name), errors.TicketError)
    assert issubclass(errors.InvalidRoomConfig, ValueError)
