#!/bin/bash

# ensure the volume mounted python code is using editable mode
echo "Installing python tasks"
cd /mira_task
pip install --no-cache-dir -e .

# run it
echo "Installing taskrunner"
cd /taskrunner
pip install --no-cache-dir -e .

# taskrunner: the runner binary instead of `gradlew bootRun`
cd /
exec taskrunner serve
