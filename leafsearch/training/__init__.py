"""How a trial trains: the recipe, the objective every engine calls, its phases and epoch loop,
and the Keras pieces they compile with (optimizers, schedules, losses, TensorBoard).

Import the modules themselves: the objective and the recipe load without Keras (the study
process may never import it), the loop and the pieces need it."""
