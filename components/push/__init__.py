"""The push stage (stage.py): a blessed model into the versioned registry."""
