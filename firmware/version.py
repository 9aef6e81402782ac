"""The firmware's version, reported in BootNotification and as go-e `fwv`."""
VERSION = "0.1.0"
VENDOR = "OpenWallbox"
