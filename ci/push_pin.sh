#!/usr/bin/env bash
# The Git half of a promotion or rollback in Actions: pin VERSION in STAGE's overlay, commit it with MESSAGE
# (written by `aidetect ci promote|rollback --no-pin`, naming the version and its metrics) and push.
# Locally `aidetect ci promote` does both halves itself; here the registry half runs in the cluster and this
# half on a hosted runner, which holds the push token. Needs python3 with ruamel.yaml (ci/gitops_pin.py).
#
#   STAGE=canary VERSION=7 MESSAGE="Promote aidetect v7 to canary: ..." bash ci/push_pin.sh
#   env: REMOTE (default: this GitHub repository through GITHUB_TOKEN), BRANCH (default main)
set -euo pipefail
cd "$(dirname "$0")/.."
case "${STAGE:-}" in
  staging|canary|production) ;;
  *) echo "::error::STAGE must be staging, canary or production, not '${STAGE:-}'"; exit 2 ;;
esac
[[ "${VERSION:-}" =~ ^[1-9][0-9]*$ ]] || { echo "::error::VERSION must be a model version number"; exit 2; }
[ -n "${MESSAGE:-}" ] || { echo "::error::MESSAGE is empty"; exit 2; }
branch=${BRANCH:-main}
overlay="gitops/apps/detector/overlays/$STAGE"

python3 -m ci.gitops_pin model "$overlay" "$VERSION"
if git diff --quiet -- "$overlay"; then
  echo "$STAGE already pins version $VERSION: nothing to commit"
  exit 0
fi
# The bot's identity for the commit and for any rebase below.
export GIT_AUTHOR_NAME="github-actions[bot]" GIT_COMMITTER_NAME="github-actions[bot]"
export GIT_AUTHOR_EMAIL="41898282+github-actions[bot]@users.noreply.github.com"
export GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
git commit --quiet --only -F - -- "$overlay/model-version.yaml" <<<"$MESSAGE"
remote=${REMOTE:-"https://x-access-token:${GITHUB_TOKEN:?}@github.com/${GITHUB_REPOSITORY:?}.git"}
# Another pin may land first: rebase onto it (pins touch one line each) and retry.
for attempt in 1 2 3; do
  if git push --quiet "$remote" "HEAD:$branch"; then
    echo "pinned $STAGE to version $VERSION"
    exit 0
  fi
  echo "push $attempt failed; rebasing"
  git pull --quiet --rebase "$remote" "$branch"
done
exit 1
