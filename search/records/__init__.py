"""Trial records on disk: atomic files, checkpoints, costs, trial folders, the leaderboard."""
