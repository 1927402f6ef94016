/**
 * How many times users were removed (DeleteUser, DeleteCollection) through this process, counted
 * after each commit. Kept only where this process is the only writer (PGlite): there an unchanged
 * count proves that no user has gone since it was read. On a server, other instances remove users
 * too, so there is no such proof (Database.userRemovals is undefined).
 */
export interface UserRemovals {
  readonly count: number;
  /** A removal of users committed. */
  committed(): void;
}

export function createUserRemovals(): UserRemovals {
  let count = 0;
  return {
    get count() {
      return count;
    },
    committed() {
      count++;
    },
  };
}
