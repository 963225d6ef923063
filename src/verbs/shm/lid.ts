/**
 * This process's LID on shm0: UD address handles and receive completions (slid) name a process by it. A unicast
 * LID (1 to 0xbfff), from the pid: two processes of one host share one only if their pids are 0xbfff apart.
 */
export const LOCAL_LID = (process.pid % 0xbfff) + 1;
