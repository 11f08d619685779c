"""ESP32 flash rig: relay-driven download mode, esptool sessions, backups, and a simulated ESP32."""

__version__ = "0.1.0"
