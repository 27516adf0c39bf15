"""Message channels: the delivery log, the do-not-contact list, the channels themselves."""
