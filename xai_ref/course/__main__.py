"""``python -m xai_ref.course make-student|verify|execute ...``: see `xai_ref.course.student`."""
import sys

from .student import main

sys.exit(main())
