"""Three tiny stages for testing the runner and the store without TensorFlow or Beam:
numbers -> doubled -> total, each a plain module that follows the stage contract."""
