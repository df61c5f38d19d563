"""Wake words and turn-taking: the detector, hotword mode's state machine, the chime, push-to-talk."""
