"""How the simulated board's bridge reaches a host: a pseudo-terminal (:mod:`.pty`) and the
line between them (:mod:`.line`: pacing at the line rate, the termios speed table).
"""
