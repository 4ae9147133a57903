// PostgreSQL backends (pg driver, versioned migrations): mirror index, snapshot history and transparency-log metadata; SQLite stays the embedded default.
export {};
