"""Images: the course's vision data and what is done to it.

    digits  load_digits (the pinned, fixed split of the 8x8 digits), Split, DIGITS_SHA256
    shift   moved, turned, blurred, noisy or inverted copies of the images (distribution shift)
"""
