from aidetect.cli import app

app(prog_name="aidetect")
