"""The four-colour warning engine (pure numpy) and the Faust app that runs it."""
