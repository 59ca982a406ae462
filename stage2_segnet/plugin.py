"""mmengine ``custom_imports`` entry point of our configs: importing it registers stage 2's additions.

An entry point by design (mmengine imports the modules a config names): it calls
:func:`stage2_segnet.register.register_all`, and nothing else imports it.
"""

from stage2_segnet.register import register_all

register_all()
