//! netz-host: the game-server lifecycle supervisor.
