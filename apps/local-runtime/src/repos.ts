/** The local stack's project repositories live in the platform library: the warm pool's claim makes them too. */
export { BareRepositories, DEFAULT_BRANCH, git } from '@berth/platform/local-repos';
