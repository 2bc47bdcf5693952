"""Cost guards: evening auto-stop, idle stop, warnings and snooze, the leak sweeper, cost figures.

Each module does one thing; the triggers in functions/costguard.py only decode and hand off.
"""
