"""``hhrt bench``: the measurements (:mod:`.run`) and the backend comparison (:mod:`.compare`)."""
