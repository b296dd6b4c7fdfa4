"""Video providers: photo + prompt → an MP4 clip."""
