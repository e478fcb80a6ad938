/** An async readers–writer lock: many shared holders, or one exclusive holder. Writers are not starved. */
export class RwLock {
  #readers = 0;
  #writer = false;
  #queue: { exclusive: boolean; wake: () => void }[] = [];

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#writer || this.#queue.length > 0) await new Promise<void>((wake) => this.#queue.push({ exclusive: false, wake }));
    else this.#readers++;
    try {
      return await fn();
    } finally {
      this.#readers--;
      this.#next();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#writer || this.#readers > 0 || this.#queue.length > 0) await new Promise<void>((wake) => this.#queue.push({ exclusive: true, wake }));
    else this.#writer = true;
    try {
      return await fn();
    } finally {
      this.#writer = false;
      this.#next();
    }
  }

  #next(): void {
    if (this.#writer) return;
    while (this.#queue.length > 0) {
      const head = this.#queue[0];
      if (head.exclusive) {
        if (this.#readers > 0) return;
        this.#queue.shift();
        this.#writer = true;
        head.wake();
        return;
      }
      this.#queue.shift();
      this.#readers++;
      head.wake();
    }
  }
}
