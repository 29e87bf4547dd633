"""Personalised aesthetics, plain logic: the FLICKR-AES worker split, k-shot draws, report and
figures.
"""
