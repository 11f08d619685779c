"""Faithful fakes of hardware libraries (gpiod v2, RPi.GPIO) for the pin backends' tests."""
