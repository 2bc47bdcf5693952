"""The Functions blueprints: thin triggers that decode their input and hand off to shared/."""
