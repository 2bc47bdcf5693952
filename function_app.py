"""The Functions app: creates it and registers the blueprints. Nothing else lives here."""

import azure.functions as func

from functions import api, costguard, pipeline, submissions, timers, workstations

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(api.bp)
app.register_functions(pipeline.bp)
app.register_functions(timers.bp)
app.register_functions(costguard.bp)
app.register_functions(submissions.bp)
app.register_functions(workstations.bp)
